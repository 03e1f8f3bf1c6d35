"""Results: rows (``records``), the crash-safe journal, run directories (``rundir``), results.csv (``csvio``), runs
read back (``runs``), statistics (``stats``, ``significance``, ``speed_summary``), one cell followed across runs
(``cells``), and one module per output: text tables (``table``), report.md (``report``) and its PNGs (``plots``),
report.html (``report_html``, ``report_figures``) and history.html (``history_html``) built on ``htmlkit``, compare's
text (``comparison``), and history's data (``history_model``), each series's change point (``changepoint``),
history.csv (``history_frame``) and text (``history_text``), written by ``history``. Pure data in, files or text out;
it never imports the commands or a framework."""
