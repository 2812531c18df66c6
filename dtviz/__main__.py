from dtviz.cli.main import main

raise SystemExit(main())
