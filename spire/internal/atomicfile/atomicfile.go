// Package atomicfile writes files so that a reader sees either the old content or the new one,
// never a half-written file: a temporary file in the same directory, synced, then renamed over
// the target.
package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with mode (the mode is set before any byte is written, so
// a key or a token is never readable by others, even for a moment).
func Write(path string, data []byte, mode os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteIfChanged is Write unless path already holds exactly data with exactly mode. It reports
// whether it wrote.
func WriteIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if info, err := os.Stat(path); err == nil && info.Mode().Perm() == mode.Perm() {
		if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, data) {
			return false, nil
		}
	}
	return true, Write(path, data, mode)
}
