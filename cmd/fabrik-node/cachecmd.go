package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tuist/fabrik-node/recipe/backend"
	"github.com/tuist/fabrik-node/recipe/runner"
)

const cacheUsage = `usage: fabrik-node cache status SCRIPT [-- ARGS...]   key, cached or not, when, size
       fabrik-node cache clean [SCRIPT]                delete one script's entry, or every recipe entry
       fabrik-node cache list                          cached recipe steps
       fabrik-node cache stats                         entries, bytes, hits, misses, time saved
flags: --url URL, --config FILE, --config-SECTION-KEY VALUE`

// cacheCommand inspects and cleans recipe entries.
func cacheCommand(args []string, cwd string) int {
	f, rest, err := parseRecipeFlags(args, nil)
	if err != nil || len(rest) == 0 {
		return fail("cache: %v\n%s", orUsage(err), cacheUsage)
	}
	var pos, scriptArgs []string
	for i, a := range rest {
		if a == "--" {
			scriptArgs = rest[i+1:]
			break
		}
		pos = append(pos, a)
	}
	sub, pos := pos[0], pos[1:]
	switch {
	case sub == "status" && len(pos) == 1, sub == "clean" && len(pos) <= 1, sub == "list" && len(pos) == 0, sub == "stats" && len(pos) == 0:
	default:
		return fail("cache: bad arguments %q\n%s", rest, cacheUsage)
	}
	if len(pos) == 1 && isTengo(pos[0]) {
		return fail("cache %s: takes a script recipe; for Tengo targets use run --dry-run (keys) and run --clean", sub)
	}
	sess, err := openRecipeBackend(f, cwd)
	if err != nil {
		return fail("cache: %v", err)
	}
	defer sess.close()
	ctx := context.Background()
	b := sess.backend
	switch sub {
	case "status":
		return cacheStatus(ctx, b, pos[0], scriptArgs)
	case "clean":
		if len(pos) == 1 {
			_, k, err := runner.New(runner.Options{}).Key(pos[0], scriptArgs)
			if err != nil {
				return fail("cache clean: %v", err)
			}
			if err := runner.DeleteEntry(ctx, b, k.Hex, pos[0]); err != nil {
				return fail("cache clean: %v", err)
			}
			fmt.Printf("[fabrik] cleaned %s (%s)\n", k.Short(), pos[0])
			return 0
		}
		entries, err := liveEntries(ctx, b)
		if err != nil {
			return fail("cache clean: %v", err)
		}
		for _, e := range entries {
			if err := runner.DeleteEntry(ctx, b, e.Key, e.Script); err != nil {
				return fail("cache clean: %v", err)
			}
		}
		fmt.Printf("[fabrik] cleaned %d recipe entries\n", len(entries))
		return 0
	case "list":
		entries, err := liveEntries(ctx, b)
		if err != nil {
			return fail("cache list: %v", err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KEY\tRECIPE\tSTORED\tSIZE\tHITS")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", short(e.Key), e.Script, e.Stored.Local().Format(time.DateTime), e.Size, e.Hits)
		}
		w.Flush()
		return 0
	default:
		evs, err := b.Events(ctx)
		if err != nil {
			return fail("cache stats: %v", err)
		}
		_, st := backend.Summarize(evs)
		entries, err := liveEntries(ctx, b)
		if err != nil {
			return fail("cache stats: %v", err)
		}
		st.Entries, st.Bytes = len(entries), 0
		for _, e := range entries {
			st.Bytes += e.Size
		}
		ratio := 0.0
		if st.Hits+st.Misses > 0 {
			ratio = 100 * float64(st.Hits) / float64(st.Hits+st.Misses)
		}
		fmt.Printf("entries: %d\nbytes: %d\nhits: %d\nmisses: %d\nhit rate: %.1f%%\ntime saved: %s\n",
			st.Entries, st.Bytes, st.Hits, st.Misses, ratio, st.Saved.Round(10*time.Millisecond))
		return 0
	}
}

func orUsage(err error) error {
	if err == nil {
		return errUsage
	}
	return err
}

func short(key string) string {
	if len(key) > 16 {
		return key[:16]
	}
	return key
}

// liveEntries are the ledger's entries still present in the cache (an
// evicted or expired entry is not listed).
func liveEntries(ctx context.Context, b backend.Backend) ([]backend.Entry, error) {
	evs, err := b.Events(ctx)
	if err != nil {
		return nil, err
	}
	all, _ := backend.Summarize(evs)
	var out []backend.Entry
	for _, e := range all {
		ok, err := runner.Exists(ctx, b, e.Key)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func cacheStatus(ctx context.Context, b backend.Backend, path string, args []string) int {
	_, k, err := runner.New(runner.Options{}).Key(path, args)
	if err != nil {
		return fail("cache status: %v", err)
	}
	fmt.Printf("recipe: %s\nkey: %s (%s)\n", path, k.Short(), k.Hex)
	rec, found, err := runner.LoadRecord(ctx, b, k.Hex)
	if err != nil {
		return fail("cache status: %v", err)
	}
	if !found {
		fmt.Println("cached: no")
		return 0
	}
	recSize, _, err := b.Has(ctx, backend.Runs, k.Hex+".run")
	if err != nil {
		return fail("cache status: %v", err)
	}
	fmt.Printf("cached: yes\nstored: %s\nsize: %d bytes (outputs archive %d, run record %d)\nran for: %s\n",
		rec.CreatedAt.Local().Format(time.RFC3339), rec.ArchiveSize+recSize, rec.ArchiveSize, recSize, rec.Duration.Round(time.Millisecond))
	if !rec.ExpiresAt.IsZero() {
		fmt.Printf("expires: %s\n", rec.ExpiresAt.Local().Format(time.RFC3339))
	}
	return 0
}
