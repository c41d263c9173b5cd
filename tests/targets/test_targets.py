"""Targets name their rule choices with enums; the names users write still work."""
import dataclasses

import pytest

from layoutopt import TARGETS, ShuffleForm, TargetError
from layoutopt.rewrites import rules_for


def test_shuffle_forms_accept_their_names_and_none():
    base = TARGETS["ethos-u55"]
    assert dataclasses.replace(base, channel_shuffle="conv").channel_shuffle is ShuffleForm.CONV
    assert dataclasses.replace(base, channel_shuffle=None).channel_shuffle is ShuffleForm.AS_WRITTEN
    assert dataclasses.replace(base, channel_shuffle=ShuffleForm.INTERLEAVE).channel_shuffle is ShuffleForm.INTERLEAVE
    with pytest.raises(TargetError, match="channel_shuffle"):
        dataclasses.replace(base, channel_shuffle="transpose")


@pytest.mark.parametrize("form, rules", [
    (ShuffleForm.AS_WRITTEN, set()),
    (ShuffleForm.CHANNELS_LAST, {"channel_shuffle_to_channels_last"}),
    # with an ATen plan the channels-last form (without, see the test below)
    (ShuffleForm.CHANNEL_ORDER, {"channel_shuffle_to_channels_last"}),
    (ShuffleForm.CONV, {"channel_shuffle_to_conv"}),
])
def test_the_shuffle_form_picks_the_shuffle_rule(form, rules):
    target = dataclasses.replace(TARGETS["ethos-u55"], channel_shuffle=form)
    assert {r.name for r in rules_for(target)} & {"channel_shuffle_to_channels_last", "channel_shuffle_to_conv"} == rules


def test_interleave_adds_view_into_cat_only_where_the_backend_lays_tensors_out():
    cortex_m = TARGETS["cortex-m"]
    assert cortex_m.channel_shuffle is ShuffleForm.INTERLEAVE
    assert "view_into_cat" not in {r.name for r in rules_for(cortex_m, planned=True)}
    assert "view_into_cat" in {r.name for r in rules_for(cortex_m, planned=False)}


def test_channel_orders_leave_gathers_to_the_backend_stage_where_it_lays_tensors_out():
    u55 = TARGETS["ethos-u55"]
    assert u55.channel_shuffle is ShuffleForm.CHANNEL_ORDER
    gathers = {"channel_shuffle_to_channels_last", "fold_channel_permutation", "view_into_cat"}
    assert gathers & {r.name for r in rules_for(u55, planned=False)} == set()
    assert gathers & {r.name for r in rules_for(u55, planned=True)} == gathers - {"view_into_cat"}
