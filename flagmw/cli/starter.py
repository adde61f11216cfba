# ruff: noqa: E501  (the template mirrors DESIGN §9: one flow mapping per flag)
"""The starter ``flags.yaml`` written by ``flagmw init`` (DESIGN §9 format).

The file holds the registry (``flags:``) and a first snapshot (every other section).
``prompt.style`` gets an ``expires`` date six months after the day of ``init``, so the
starter validates without warnings whenever it is written.
"""

from __future__ import annotations

import datetime as _dt

_TEMPLATE = """\
# flags.yaml — written by `flagmw init`. One file holds two things:
#   * the registry (`flags:`): every flag's type, default, binding and owner;
#   * a snapshot (every other section): values and rules, layer by layer.
# Check it:    flagmw validate flags.yaml
# Publish it:  flagmw publish flags.yaml --message "first snapshot"
# Resolution order, lowest first (later layers win):
#   default → environments → values/rules → tenants → routes → experiments → override
# Overrides and kill switches are not in this file: `flagmw kill KEY --reason ... --ttl 4h`.

flags:
  # type: bool | enum (choices) | int / float (min, max) | string | json (schema)
  # binding: pinned (default: fixed for a whole run) | hot (re-read at every step boundary)
  # protected: a global kill skips tenants that list the flag under `requires`
  # expires: after this date `flagmw validate` and `flagmw lint` warn
  tools.refund_api.enabled: {{type: bool, default: true, binding: hot, owner: payments, description: Refund tool gate}}
  agent.enabled:            {{type: bool, default: true, binding: hot, owner: platform, description: Run kill (drains runs)}}
  model.primary:            {{type: enum, choices: [gpt-4o, gpt-4o-mini], default: gpt-4o, owner: platform, description: Primary model route}}
  model.fallbacks:          {{type: json, schema: {{type: array, items: {{type: string}}}}, default: [], owner: platform, description: Fallback ladder}}
  loop.max_iterations:      {{type: int, min: 1, max: 50, default: 8, binding: hot, owner: platform, description: Agent loop cap}}
  compliance.pii_redaction: {{type: bool, default: true, protected: true, owner: security, description: Redact PII in tool output}}
  prompt.style:             {{type: enum, choices: [v2, v3], default: v2, owner: ux, expires: {expires}, description: Style prompt version}}

# Layer 2: one slice per deployment environment (`--environment`, default production).
environments:
  staging: {{model.primary: gpt-4o-mini}}

# Layer 3: global values, then global rules (the first matching rule wins per key).
values:
  model.fallbacks: [gpt-4o-mini]
rules:
  - name: enterprise-v3
    when: {{plan: {{in: [enterprise]}}}}     # equals, in, not_in, gt/gte/lt/lte, exists
    set: {{prompt.style: v3}}

# Layer 4: tenant overlays (values, rules, and the protected flags a tenant requires on).
tenants:
  acme:
    values: {{model.primary: gpt-4o-mini}}
    requires: [compliance.pii_redaction]

# Layer 5: route (agent profile) overlays.
routes:
  refund-assistant:
    values: {{loop.max_iterations: 4}}

# Layer 6: experiments and gradual rollouts (sticky hash of the bucketing unit).
experiments:
  style-v3-rollout:
    flag: prompt.style
    unit: user                            # user | tenant | thread | run
    when: {{plan: {{in: [free, pro]}}}}
    variants: {{control: v2, treatment: v3}}
    weights: {{control: 75, treatment: 25}}   # percent, summing to 100
"""


def starter_flags_yaml(today: _dt.date | None = None) -> str:
    """The text of the starter ``flags.yaml``; ``today`` sets the example expiry date
    (``today + 182 days``)."""
    today = today or _dt.date.today()
    return _TEMPLATE.format(expires=(today + _dt.timedelta(days=182)).isoformat())
