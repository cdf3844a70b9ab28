from umvu.cli import main

raise SystemExit(main())
