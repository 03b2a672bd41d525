from lambda_app.devtools.cli import main

raise SystemExit(main())
