"""Feedback on what our models write: label tasks built from an evaluation run, labels ingested
and checked, agreement between labellers, and the scores calibrated on those labels."""
