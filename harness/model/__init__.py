"""The networks, framework-neutral: the layer graph (``graph``), the built-in networks (``networks``, the
``models`` plugin), shapes / parameter counts / FLOPs (``shapes``), the portable weight format (``weights``)
and the maths of cross-framework verification (``verification``). No framework, no I/O beyond .npz files."""
