"""The blind vote ("arena"): systems drawn at random, answers shown as A and B, votes stored
in SQLite, Bradley–Terry ratings, and the votes exported back into the reward model's data."""
