"""The machine, framework-neutral: the built-in CPU device plugin (``cpu``) and device peak throughput
(``peaks``). Safe to import on both sides of the process boundary."""
