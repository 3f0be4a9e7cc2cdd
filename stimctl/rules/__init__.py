"""Safety rules, pure and without I/O.

The profile model and its loading, the acupoint catalogue, the rule table (every limit and policy
with its source), the rules themselves, quantities and validation.
"""
