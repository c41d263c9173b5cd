"""The problem builder's caps: every place one cuts layouts or modes off is reported, since the
solver's bound then holds for the truncated problem only."""
import pytest
import torch
from torch import nn

import layoutopt
from helpers import check_plan
from layoutopt.zoo import build


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


class ConcatOfConvs(nn.Module):
    """``n`` operands of two labels each: 2**n label combinations for the concat."""

    def __init__(self, n):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 1) for _ in range(n))

    def forward(self, x):
        return torch.cat([conv(x) for conv in self.convs], 1)


class Rank6Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.conv2 = nn.Conv2d(4, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.conv(x).reshape(1, 2, 4, 2, 2, 4).transpose(1, 2).reshape(1, 8, 4, 4)
        return self.conv2(y)


def test_a_small_cnn_is_not_truncated():
    report = check_plan(SmallCNN(), (torch.randn(1, 3, 8, 8),)).report
    assert report.truncated == [] and report.to_dict()["truncated"] == []
    assert "truncated" not in report.render()


def test_a_concat_of_64_label_combinations_is_probed_whole():
    assert check_plan(ConcatOfConvs(6), (torch.randn(1, 4, 8, 8),)).report.truncated == []


def test_a_concat_past_the_combination_cap_is_reported():
    report = check_plan(ConcatOfConvs(7), (torch.randn(1, 4, 8, 8),)).report
    assert report.truncated == [{"cap": "max_combos", "node": "cat",
                                 "detail": "128 operand label combinations: probed the exported one and 2 alike"}]
    text = report.render()
    assert "1 cut(s): bound and gap are relative to it" in text
    assert "truncated by max_combos at cat: 128 operand label combinations" in text


def test_a_rank_6_view_is_reported():
    # without the rewrites, which would take the rank-6 shuffle out of the graph
    report = layoutopt.optimize(Rank6Shuffle(), (torch.randn(1, 4, 4, 4),), target="ethos-u55",
                                rewrites=False).report
    assert [(t["cap"], t["node"]) for t in report.truncated] == [
        ("max_permuted_rank", "transpose"), ("max_permuted_rank", "reshape_1")]


def test_attention_block_is_cut_at_the_labels_per_value_cap():
    report = layoutopt.optimize(*build("attention_block"), target="ethos-u55", verify=False).report
    assert report.truncated and {t["cap"] for t in report.truncated} == {"max_labels_per_value"}


def test_a_truncated_report_follows_the_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test extra)")
    from layoutopt.report.report import schema

    d = layoutopt.optimize(ConcatOfConvs(7), (torch.randn(1, 4, 8, 8),), verify=False).report.to_dict()
    assert d["truncated"] and d["schema_version"] == 2
    jsonschema.validate(d, schema())
