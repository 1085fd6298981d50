"""Evaluation of base vs aligned on prompt suites, the InstructGPT paper's measurements in small.

Model-free core: suite files (`suites`), statistics with bootstrap CIs (`metrics`), a resumable
results store (`results`), `summary.json` (`summary`), charts (`plots`) and `report.md` (`report`).
The runner that generates answers lives elsewhere and only calls these functions.
"""
