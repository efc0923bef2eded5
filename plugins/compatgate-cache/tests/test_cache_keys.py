"""Any changed parameter misses, ignored ones do not, and tenants never share answers unless
the operator's ``scope`` says so."""

from __future__ import annotations

from typing import Any

import pytest
from cache_support import KEYS, Teams, cache_status
from compatgate_cache import IGNORED

BASE: dict[str, Any] = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}

CHANGES: dict[str, dict[str, Any]] = {
    "message text": {"messages": [{"role": "user", "content": "Say hello!"}]},
    "message role": {"messages": [{"role": "system", "content": "Say hello."}]},
    "another turn": {"messages": [*BASE["messages"], {"role": "assistant", "content": "Hi"}]},
    "model": {"model": "gpt-4o-mini"},
    "same upstream model, other provider": {"model": "gpt-4o-elsewhere"},
    "temperature 0 as 0.0": {"temperature": 0.0},
    "top_p": {"top_p": 0.5},
    "n": {"n": 2},
    "seed": {"seed": 7},
    "max_tokens": {"max_tokens": 5},
    "max_completion_tokens": {"max_completion_tokens": 5},
    "stop": {"stop": ["\n"]},
    "tools": {"tools": [TOOL]},
    "tool_choice": {"tool_choice": "none"},
    "response_format": {"response_format": {"type": "json_object"}},
    "logprobs": {"logprobs": True},
    "logit_bias": {"logit_bias": {"50256": -100}},
    "presence_penalty": {"presence_penalty": 0.5},
    "reasoning_effort": {"reasoning_effort": "low"},
    "service_tier": {"service_tier": "flex"},
    "an unknown parameter": {"x_vendor_option": {"depth": 2}},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_any_changed_parameter_misses(make_gateway, upstream, change):
    gw = make_gateway({"when": "always"})
    assert cache_status(gw.chat(BASE)) == "miss"
    changed = gw.chat({**BASE, **change})
    assert changed.status_code == 200 and cache_status(changed) == "miss"
    assert len(upstream[0].received) == 2
    assert cache_status(gw.chat({**BASE, **change})) == "hit"  # and the changed request is cached


IGNORED_CHANGES: dict[str, dict[str, Any]] = {
    "user": {"user": "end-user-42"},
    "metadata": {"metadata": {"run": "eval-7"}, "store": True},
    "stream_options": {"stream": True, "stream_options": {"include_usage": True}},
    "safety_identifier": {"safety_identifier": "hash-1"},
    "prompt_cache_key": {"prompt_cache_key": "tenant-1"},
}


@pytest.mark.parametrize("change", IGNORED_CHANGES.values(), ids=IGNORED_CHANGES.keys())
def test_parameters_that_cannot_change_the_answer_are_ignored(make_gateway, upstream, change):
    assert set(change) <= IGNORED
    gw = make_gateway()
    gw.chat(BASE)
    assert cache_status(gw.chat({**BASE, **change})) == "hit"
    assert len(upstream[0].received) == 1


def test_ignore_params_adds_names(make_gateway, upstream):
    gw = make_gateway({"ignore_params": ["x_trace"]})
    gw.chat({**BASE, "x_trace": "a"})
    assert cache_status(gw.chat({**BASE, "x_trace": "b"})) == "hit"


def test_each_key_has_its_own_answers_by_default(make_gateway, upstream):
    gw = make_gateway()
    assert cache_status(gw.chat(BASE, key=KEYS[0])) == "miss"
    assert cache_status(gw.chat(BASE, key=KEYS[1])) == "miss"  # another tenant: never shared
    assert cache_status(gw.chat(BASE, key=KEYS[0])) == "hit"
    assert cache_status(gw.chat(BASE, key=KEYS[1])) == "hit"
    assert len(upstream[0].received) == 2


def test_team_scope_shares_within_a_team_only(make_gateway, upstream):
    gw = make_gateway({"scope": "team"}, plugins=(Teams(),))
    assert cache_status(gw.chat(BASE, key="sk-team-red-1")) == "miss"
    assert cache_status(gw.chat(BASE, key="sk-team-red-2")) == "hit"  # same team
    assert cache_status(gw.chat(BASE, key="sk-team-blue-1")) == "miss"  # another team
    assert cache_status(gw.chat(BASE, key="sk-solo-1")) == "miss"  # no team: its own
    assert cache_status(gw.chat(BASE, key="sk-solo-2")) == "miss"
    assert len(upstream[0].received) == 4


def test_global_scope_shares_with_everyone(make_gateway, upstream):
    gw = make_gateway({"scope": "global"})
    assert cache_status(gw.chat(BASE, key=KEYS[0])) == "miss"
    assert cache_status(gw.chat(BASE, key=KEYS[1])) == "hit"
