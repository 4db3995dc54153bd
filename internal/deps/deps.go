//go:build tools

// Package deps pins modules that the build needs before code imports them.
package deps

import (
	_ "github.com/gin-gonic/gin"
	_ "github.com/hashicorp/hc-install"
	_ "github.com/hashicorp/terraform-exec/tfexec"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/temporalio/ui-server/v2/server"
	_ "go.temporal.io/sdk/client"
	_ "go.temporal.io/sdk/testsuite"
	_ "go.temporal.io/sdk/worker"
	_ "go.temporal.io/server/schema/sqlite"
	_ "go.temporal.io/server/temporal"
	_ "go.temporal.io/server/temporaltest"
	_ "go.uber.org/zap"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
