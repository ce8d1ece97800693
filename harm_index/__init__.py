"""Harm weights, scores, rates, disproportionality and composite scores. No HTTP here."""
