package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// badgerOptions bounds Badger's memory and disk for a cache index. The defaults are
// sized for a database server (64 MiB memtables x5, a 256 MiB block cache,
// unbounded table indices, 1 GiB value-log files): several hundred MiB of
// RSS for an index of small entries. An index entry is ~100 bytes, so 100k
// artifacts are ~10 MiB of LSM data and these bounds still hold all of it
// in cache.
func badgerOptions(dir string, syncWrites bool, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(syncWrites).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(16 << 20).
		// Index values are tens of bytes; anything under 1 KiB stays inline
		// in the LSM tree, so the startup scan never touches the value log.
		// Larger values (inline blob bodies, big attrs maps, queue entries)
		// go there. Keeping bodies in the LSM instead cost 30% more CPU per
		// small PUT (flushes and compactions copy them again).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithLogger(slogBadger{logger})
}

// slogBadger routes Badger's logging into slog. Info and debug lines (every
// compaction, every flush) are dropped: they are noise for a cache operator.
type slogBadger struct{ l *slog.Logger }

func (b slogBadger) Errorf(f string, a ...any) { b.log(slog.LevelError, f, a) }

func (b slogBadger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }

func (b slogBadger) Infof(string, ...any) {}

func (b slogBadger) Debugf(string, ...any) {}

func (b slogBadger) log(level slog.Level, f string, a []any) {
	if b.l == nil {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
