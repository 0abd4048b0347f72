"""Reports: read-only views over runs and studies: the tables of `nntune show` and the HTML report."""

from ._ablation import render_ablation
from ._compare import render_comparison
from ._html import render_report
from ._tables import params_table, read_run, run_report, summary_table, top_trials, trials_table

__all__ = ["params_table", "read_run", "render_ablation", "render_comparison", "render_report", "run_report",
           "summary_table", "top_trials", "trials_table"]
