"""Reports: read-only views over runs and studies (tables now; plots and HTML later)."""

from ._tables import params_table, read_run, run_report, summary_table, top_trials, trials_table

__all__ = ["params_table", "read_run", "run_report", "summary_table", "top_trials", "trials_table"]
