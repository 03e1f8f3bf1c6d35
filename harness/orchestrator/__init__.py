"""The orchestrator side of the process boundary: plans a run (``plan``, ``recipes``), probes frameworks
(``probes``), starts and watches worker processes (``workers``), retries them (``retries``), schedules cells
locally or on Ray (``executors``) or as Slurm jobs (``slurm``) and runs the whole matrix (``run``). It never imports a
framework."""
