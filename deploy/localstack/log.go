package localstack

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// componentLevel is the level below which the embedded components' own logs
// are dropped: warn, unless the caller's logger is enabled for debug.
func componentLevel(l *slog.Logger) slog.Level {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// levelOff is above every level: nothing is logged.
const levelOff = slog.Level(1 << 10)

// temporalLogger adapts slog to the Temporal server's logger.
type temporalLogger struct {
	log   *slog.Logger
	level *slog.LevelVar // set to levelOff when the server stops
}

var (
	_ log.Logger      = temporalLogger{}
	_ log.SLogWrapper = temporalLogger{}
)

func (l temporalLogger) Debug(msg string, tags ...tag.Tag) { l.emit(slog.LevelDebug, msg, tags) }
func (l temporalLogger) Info(msg string, tags ...tag.Tag)  { l.emit(slog.LevelInfo, msg, tags) }
func (l temporalLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l temporalLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l temporalLogger) DPanic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
}

// Panic and Fatal log, then panic: the server's code after them assumes
// they do not return, and exiting the process is not ours to do. Start
// turns a fatal panic during startup into an error.
func (l temporalLogger) Panic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(fatalError{msg: msg, tags: tags})
}

func (l temporalLogger) Fatal(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(fatalError{msg: msg, tags: tags})
}

func (l temporalLogger) SLog() *slog.Logger { return l.log }

func (l temporalLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level < l.level.Level() || !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// fatalError is what temporalLogger panics with.
type fatalError struct {
	msg  string
	tags []tag.Tag
}

// Unwrap returns the error logged with the message (tag.Error), if any.
func (e fatalError) Unwrap() error {
	for _, t := range e.tags {
		if zt, ok := t.(tag.ZapTag); ok {
			if err, ok := zt.Field().Interface.(error); ok {
				return err
			}
		}
	}
	return nil
}

func (e fatalError) Error() string {
	var b strings.Builder
	b.WriteString(e.msg)
	for _, t := range e.tags {
		fmt.Fprintf(&b, " %s=%v", t.Key(), t.Value())
	}
	return b.String()
}

// kafkaLogger adapts slog to kfake's logger.
type kafkaLogger struct {
	log   *slog.Logger
	level slog.Level
}

func (l kafkaLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	if sl < l.level || !l.log.Enabled(context.Background(), sl) {
		return
	}
	l.log.Log(context.Background(), sl, fmt.Sprintf(format, args...))
}
