from agentkpi.cli import main

main()
