"""python -m bot: the same as `protocolbot serve`."""

from bot.console import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *__import__("sys").argv[1:]]))
