"""A call builds only its verb's parser (issue 19: the 17 verbs' parsers were
2 ms of every call); what it parses and prints must be the whole parser's."""

from __future__ import annotations

import argparse

import pytest
from chadthrottle.cli import ctl


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_each_verb_alone_helps_and_parses_as_in_the_whole_parser() -> None:
    whole = _verbs(ctl.build_parser())
    assert len(whole) >= 17
    for verb, parser in whole.items():
        alone = _verbs(ctl.build_parser(verb))
        assert list(alone) == [verb]
        assert alone[verb].format_help() == parser.format_help(), verb


def test_the_same_arguments_give_the_same_namespace() -> None:
    for argv in (
        ["list", "--json"],
        ["limit", "pid:7", "--up", "1M", "--own"],
        ["quota", "app:x", "5MB", "--per", "day", "--reset", "06:30"],
        [
            "schedule",
            "app:x",
            "--limit",
            "2M",
            "--days",
            "mon-fri",
            "--from",
            "09:00",
            "--to",
            "17:00",
        ],
        ["capacity", "--down", "50Mbit"],
    ):
        assert ctl.build_parser(argv[0]).parse_args(argv) == ctl.build_parser().parse_args(argv)


def test_a_word_that_is_no_verb_gets_the_whole_parser_and_its_error(capsys) -> None:
    parser = ctl.build_parser("lsit")
    assert len(_verbs(parser)) == len(_verbs(ctl.build_parser()))
    with pytest.raises(SystemExit):
        ctl.main(["lsit"])
    assert "invalid choice: 'lsit' (choose from 'list', 'limit'" in capsys.readouterr().err
