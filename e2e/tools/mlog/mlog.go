// Package mlog stands in for monis.app/mlog when the driver is built for the
// real-parts e2e. The module proxy our machines reach does not serve that
// module, so this package offers the few functions the driver calls
// (written from its call sites) and sends everything to klog, which the
// driver already configures. JSON format is accepted and logged as text.
package mlog

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
)

// LogFormat names the driver's --log-format-json choice.
type LogFormat string

// The two formats the driver chooses between.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns the function the driver defers at exit: flush klog.
func Setup() func() { return klog.Flush }

// ValidateAndSetKlogLevelAndFormatGlobally checks the level the driver read
// back from klog; klog keeps its own flags, so nothing else is set.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid klog level %d", level)
	}
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("unknown log format %q", format)
	}
	return nil
}

// Error logs err with a message and key/value pairs.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal logs err, flushes and exits with status 1.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal error", keysAndValues...)
	klog.FlushAndExit(klog.ExitFlushTimeout, 1)
}
