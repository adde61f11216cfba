"""Progressive delivery of agent versions (issue 12): versions as artifacts
(:mod:`.versions`), the rollout store (:mod:`.store`), run outcomes (:mod:`.outcomes`),
staged rollouts with guardrails (:mod:`.stages`, :mod:`.guardrails`, :mod:`.srm`,
:mod:`.controller`). See docs/rollouts.md."""
