"""Curtailment that acts: which rigs to switch off and on, when, why, and whether it worked."""
