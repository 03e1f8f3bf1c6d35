"""Results: rows (``records``), the crash-safe journal, run directories, results.csv (``csvio``), runs read
back (``runs``), statistics and significance tests, and rendering (``table``, ``report``, ``plots``,
``comparison``). Pure data in, files or text out; it never imports the commands or a framework."""
