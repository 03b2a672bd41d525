from lambda_app.cli import main

raise SystemExit(main())
