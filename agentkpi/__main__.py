from agentkpi.cli import run

run()
