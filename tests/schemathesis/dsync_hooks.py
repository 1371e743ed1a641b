"""Schemathesis hooks for tests/tests/e2e/openapi.rs (SCHEMATHESIS_HOOKS=dsync_hooks).

Lock acquires and queue consumes may legitimately wait up to minutes
(`wait_ms`); a fuzzer that generates the documented maximum would spend its
whole budget waiting. Waits are cut to 100 ms: the handlers' wait paths still
run, the run stays bounded.
"""

import schemathesis

MAX_WAIT_MS = 100


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    body = case.body
    if isinstance(body, dict):
        wait = body.get("wait_ms")
        if isinstance(wait, int) and not isinstance(wait, bool) and wait > MAX_WAIT_MS:
            body["wait_ms"] = MAX_WAIT_MS
