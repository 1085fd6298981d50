"""Scorers: what each answer is graded with (a reward model, a toxicity classifier, ...).

A scorer implements the small `Scorer` protocol in `scorer.py` (a name, the JSON keys it fills,
`score(pairs)`), and is registered by one line in `scorer.SCORERS`; the page, `/compare`, the CLI
and the evaluation iterate over the configured scorers.
"""
