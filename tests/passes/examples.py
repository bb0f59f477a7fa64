"""How many examples the property tests of the passes draw: every CI run draws ``CI_EXAMPLES`` (about
15 s for both tests on 2 cores), ``-m slow`` draws ``SLOW_EXAMPLES`` more."""

import pytest
from hypothesis import HealthCheck, given, settings

CI_EXAMPLES = 200
SLOW_EXAMPLES = 10_000


def property_tests(body, **strategies):
    """The CI test and the slow test of one property ``body`` (the same strategies, different counts)."""
    def make(examples):
        return settings(max_examples=examples, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])(given(**strategies)(body))
    return make(CI_EXAMPLES), pytest.mark.slow(make(SLOW_EXAMPLES))
