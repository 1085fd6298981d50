"""The InstructGPT recipe on the shipped Gemma 3 270M base, at small scale: SFT on the
demonstrations, a Bradley–Terry reward model on the comparisons, then RL against that reward
model. `python -m demo align sft|reward|rl|all [--resume]`; see pipeline.py for the order.
Training only: the app imports none of this (it serves the merged adapters through weights.py).
"""
