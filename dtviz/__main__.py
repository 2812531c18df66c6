from dtviz.cli import main

raise SystemExit(main())
