from agentkpi.startup import main

main()
