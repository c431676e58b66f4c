"""``tempered-gan``: one module per command (:mod:`.train`, :mod:`.compare`, :mod:`.sweep`,
:mod:`.reproduce`, :mod:`.eval`, :mod:`.sample`), each owning its options and its handler; what
they share is :mod:`.options`. Bad input ends with one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import errno
import signal
import sys

import torch.distributed

from tempered_gan.cli import compare, reproduce, sample, sweep, train
from tempered_gan.cli import eval as eval_command
from tempered_gan.cli.options import Parser, translate_deprecated
from tempered_gan.errors import UserError
from tempered_gan.training.loop import Interrupted, NonFiniteLoss
from tempered_gan.util import locks
from tempered_gan.util.distributed import collective_failure_message, is_collective_failure

COMMANDS = (train, compare, sweep, reproduce, eval_command, sample)


def build_parser() -> Parser:
    parser = Parser(prog="tempered-gan", description="Tempered Adversarial Networks (Sajjadi et al., 2018)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, or a malformed option (already printed as one line)
        return exc.code
    try:
        if hasattr(args, "lens"):       # the commands with training options
            translate_deprecated(args)
        return args.run(args)
    except NonFiniteLoss as exc:
        print(f"tempered-gan: error: {exc}", file=sys.stderr)
        return 3
    except UserError as exc:
        for line in str(exc).splitlines():   # one line per problem (reproduce: one per missing data set)
            print(f"tempered-gan: error: {line}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        if args.command in ("compare", "sweep"):
            print(f"tempered-gan: {exc}; checkpoint saved; run the same {args.command} command again to continue",
                  file=sys.stderr)
            return 128 + exc.signum
        where = args.resume or getattr(args, "run_dir", "RUN_DIR")
        print(f"tempered-gan: {exc}; checkpoint saved; continue with: tempered-gan train --resume {where}",
              file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tempered-gan: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):   # a full disk anywhere not yet named more precisely
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"tempered-gan: error: {exc.strerror or exc}{where}; files written before are kept", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not is_collective_failure(exc):
            raise
        print(f"tempered-gan: error: {collective_failure_message(exc)}", file=sys.stderr)
        return 1
    finally:
        locks.release_all()           # this command's folders (the process may be a test running many)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
