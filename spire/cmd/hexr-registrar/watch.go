package main

// Watch mode: reconcile at every interval and whenever a context directory changes, through SPIRE
// Server outages, until SIGTERM or SIGINT.

import (
	"context"
	"errors"
	"log"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle lets a burst of file events (a build writing several contexts) end before reading.
const settle = 200 * time.Millisecond

func watch(ctx context.Context, opts options, loader *Loader, reg *Registrar, logger *log.Logger) {
	changes := newDirWatcher(opts.contextDirs, logger)
	defer changes.Close()
	ticker := time.NewTicker(opts.watch)
	defer ticker.Stop()
	logger.Printf("watching %s every %v", strings.Join(opts.contextDirs, ", "), opts.watch)
	var said repeats
	for {
		changes.AddMissing()
		contexts, problems, complete := loader.Load()
		said.Say(logger, "contexts", errors.Join(problems...))
		if opts.opaData != "" {
			said.Say(logger, "opa", writeOPAData(opts.opaData, contexts, logger))
		}
		pass, cancel := context.WithTimeout(ctx, reconcileTimeout)
		err := reg.Reconcile(pass, contexts, complete)
		cancel()
		if ctx.Err() != nil {
			logger.Print("stopping")
			return
		}
		said.Say(logger, "spire", err)
		select {
		case <-ctx.Done():
			logger.Print("stopping")
			return
		case <-ticker.C:
		case <-changes.Events():
			changes.Settle(settle)
		}
	}
}

// repeats logs an error once, not on every pass while it lasts, and says when it is over.
type repeats map[string]string

func (r *repeats) Say(logger *log.Logger, topic string, err error) {
	if *r == nil {
		*r = repeats{}
	}
	text := ""
	if err != nil {
		text = err.Error()
	}
	if (*r)[topic] == text {
		return
	}
	if text == "" {
		logger.Printf("%s: ok again", topic)
	} else {
		for _, line := range strings.Split(text, "\n") {
			logger.Printf("%s: %s", topic, line)
		}
	}
	(*r)[topic] = text
}

// dirWatcher signals changes in the context directories (inotify); a directory that does not exist
// yet is added when it appears. Without inotify the interval alone drives the passes.
type dirWatcher struct {
	dirs    []string
	watcher *fsnotify.Watcher
	events  chan struct{}
}

func newDirWatcher(dirs []string, logger *log.Logger) *dirWatcher {
	d := &dirWatcher{dirs: dirs, events: make(chan struct{}, 1)}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Printf("no file notifications (%v): reading the directories at every interval only", err)
		return d
	}
	d.watcher = w
	go func() {
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case d.events <- struct{}{}:
				default:
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return d
}

func (d *dirWatcher) AddMissing() {
	if d.watcher == nil {
		return
	}
	watched := d.watcher.WatchList() // a removed directory drops out: added again once it is back
	for _, dir := range d.dirs {
		if !slices.Contains(watched, filepath.Clean(dir)) {
			_ = d.watcher.Add(dir) // missing for now: tried again at the next pass
		}
	}
}

func (d *dirWatcher) Events() <-chan struct{} { return d.events }

// Settle waits until no event came for a while, and drops the ones that did.
func (d *dirWatcher) Settle(quiet time.Duration) {
	for {
		select {
		case <-d.events:
		case <-time.After(quiet):
			return
		}
	}
}

func (d *dirWatcher) Close() {
	if d.watcher != nil {
		d.watcher.Close()
	}
}
