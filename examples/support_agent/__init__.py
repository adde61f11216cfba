"""The support agent of `flagmw demo` (refund, knowledge-base search, escalation)."""
