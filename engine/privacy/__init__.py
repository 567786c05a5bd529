"""Privacy accounting (pure functions)."""

from engine.privacy.accounting import epsilon_for, noise_for, steps_and_sample_rate

__all__ = ["epsilon_for", "noise_for", "steps_and_sample_rate"]
