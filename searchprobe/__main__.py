from searchprobe.cli import main

raise SystemExit(main())
