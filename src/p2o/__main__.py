from p2o.cli import main

main()
