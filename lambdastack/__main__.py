from lambdastack.cli import main

raise SystemExit(main())
