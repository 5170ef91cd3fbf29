from aceorch.cli import main

main()
