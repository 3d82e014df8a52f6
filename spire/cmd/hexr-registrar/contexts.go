package main

// Reading and validating the process contexts that `hexr build` writes: one JSON file per role.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ProcessContext is one role of one agent: the identity it gets and the resources it is granted.
type ProcessContext struct {
	File        string // the file it was read from
	AgentName   string
	Tenant      string
	ProcessRole string
	TrustDomain string
	SPIFFEID    string
	UnixUID     int64
	Resources   []string // never nil: no resources is an empty grant
}

const (
	maxContextBytes = 1 << 20
	maxUnixUID      = 1<<31 - 1
)

// ParseContext reads one context file's content. trustDomain is the parent ID's: a context of
// another trust domain is refused. Every problem names the file and the field.
func ParseContext(file string, data []byte, trustDomain string) (ProcessContext, error) {
	c := ProcessContext{File: file}
	if !json.Valid(data) {
		return c, fmt.Errorf("%s: not valid JSON (half-written?)", file)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return c, fmt.Errorf("%s: not a JSON object", file)
	}
	var problems []error
	bad := func(field, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s %s", file, field, fmt.Sprintf(format, args...)))
	}
	segment := func(field string, into *string) {
		if s, ok := stringField(fields, field, bad); ok {
			if !isPathSegment(s) {
				bad(field, "must be 1 to %d characters of %s (not '.' or '..'), got %q", segmentMax, segmentChars, s)
			}
			*into = s
		}
	}
	segment("agent_name", &c.AgentName)
	segment("tenant", &c.Tenant)
	segment("process_role", &c.ProcessRole)
	if s, ok := stringField(fields, "trust_domain", bad); ok {
		c.TrustDomain = s
		switch {
		case !isTrustDomain(s):
			bad("trust_domain", "must be 1 to %d characters of %s, got %q", trustDomainMax, trustDomainChars, s)
		case s != trustDomain:
			bad("trust_domain", "is %q but the registrar's parent ID is in %q", s, trustDomain)
		}
	}
	if s, ok := stringField(fields, "spiffe_id", bad); ok {
		c.SPIFFEID = s
		want := "spiffe://" + c.TrustDomain + "/agent/" + c.Tenant + "/" + c.AgentName + "/" + c.ProcessRole
		switch {
		case len(problems) == 0 && s != want:
			bad("spiffe_id", "must be %q (spiffe://{trust_domain}/agent/{tenant}/{agent_name}/{process_role}), got %q", want, s)
		case len(s) > agentIDMax:
			bad("spiffe_id", "is %d bytes, at most %d", len(s), agentIDMax)
		}
	}
	c.UnixUID = uidField(fields, bad)
	c.Resources = resourcesField(fields, bad)
	return c, errors.Join(problems...)
}

func stringField(fields map[string]json.RawMessage, field string, bad func(string, string, ...any)) (string, bool) {
	raw, present := fields[field]
	if !present || string(raw) == "null" {
		bad(field, "is missing")
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		bad(field, "must be a string")
		return "", false
	}
	return s, true
}

func uidField(fields map[string]json.RawMessage, bad func(string, string, ...any)) int64 {
	raw, present := fields["unix_uid"]
	if !present || string(raw) == "null" {
		bad("unix_uid", "is missing")
		return 0
	}
	uid, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || uid < 1 || uid > maxUnixUID {
		bad("unix_uid", "must be an integer from 1 to %d, got %s", maxUnixUID, raw)
		return 0
	}
	return uid
}

// resourcesField: absent or null is no grant at all; otherwise a list of "{provider}_{name}" or
// "{provider}_{name}:{scope}", sorted and without duplicates.
func resourcesField(fields map[string]json.RawMessage, bad func(string, string, ...any)) []string {
	out := []string{}
	raw, present := fields["resources"]
	if !present || string(raw) == "null" {
		return out
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		bad("resources", "must be a list of strings")
		return out
	}
	for _, r := range list {
		if !isResource(r) {
			bad("resources", "holds %q: want {provider}_{service} or {provider}_{service}:{scope} with provider one of %s", r, strings.Join(providers, ", "))
			continue
		}
		out = append(out, r)
	}
	sort.Strings(out)
	return compact(out)
}

func compact(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// Loader reads the context directories again and again, keeping the last good context of each file
// so that a file that turns bad (half-written, edited by hand) does not take its entry away.
type Loader struct {
	Dirs        []string
	TrustDomain string
	lastGood    map[string]ProcessContext // by file path
}

// Load returns the contexts to act on and the problems found. complete is false when some file's
// declaration is unknown (bad or unreadable, with no last good state): the caller must then not
// delete anything, since the entry of that file could be among the ones it would delete.
func (l *Loader) Load() (contexts []ProcessContext, problems []error, complete bool) {
	if l.lastGood == nil {
		l.lastGood = map[string]ProcessContext{}
	}
	complete = true
	seen := map[string]bool{}
	type candidate struct {
		fresh *ProcessContext
		file  string
	}
	var files []candidate
	for _, dir := range l.Dirs {
		names, err := contextFiles(dir)
		if err != nil {
			problems = append(problems, err)
			complete = false
			for file := range l.lastGood { // the directory's files are unknown: keep what they were
				if filepath.Dir(file) == filepath.Clean(dir) {
					seen[file] = true
					files = append(files, candidate{file: file})
				}
			}
			continue
		}
		for _, file := range names {
			if seen[file] {
				continue // the same directory given twice
			}
			seen[file] = true
			c, err := readContext(file, l.TrustDomain)
			if err != nil {
				problems = append(problems, err)
				if _, ok := l.lastGood[file]; !ok {
					complete = false
				}
				files = append(files, candidate{file: file})
				continue
			}
			files = append(files, candidate{fresh: &c, file: file})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].file < files[j].file })
	for file := range l.lastGood {
		if !seen[file] {
			delete(l.lastGood, file) // the file is gone: so is its entry
		}
	}
	// Two files may not claim one SPIFFE ID or one uid: the first file (by path) keeps it; a later
	// one falls back to its last good context if that does not clash either.
	ids, uids := map[string]string{}, map[int64]string{}
	for _, f := range files {
		options := []ProcessContext{}
		if f.fresh != nil {
			options = append(options, *f.fresh)
		}
		if old, ok := l.lastGood[f.file]; ok {
			options = append(options, old)
		}
		for i, c := range options {
			clash := ""
			if other, ok := ids[c.SPIFFEID]; ok {
				clash = fmt.Sprintf("%s: spiffe_id %s is already declared by %s", c.File, c.SPIFFEID, other)
			} else if other, ok := uids[c.UnixUID]; ok {
				clash = fmt.Sprintf("%s: unix_uid %d is already used by %s (one uid, one identity)", c.File, c.UnixUID, other)
			}
			if clash != "" {
				if i == 0 && f.fresh != nil {
					problems = append(problems, errors.New(clash))
				}
				continue
			}
			ids[c.SPIFFEID], uids[c.UnixUID] = c.File, c.File
			contexts = append(contexts, c)
			l.lastGood[f.file] = c
			break
		}
	}
	return contexts, problems, complete
}

// contextFiles lists dir's *.json files (not hidden ones: editors' and atomic writers' temporary
// files), sorted.
func contextFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %s: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") || e.IsDir() {
			continue
		}
		files = append(files, filepath.Join(filepath.Clean(dir), name))
	}
	sort.Strings(files)
	return files, nil
}

func readContext(file, trustDomain string) (ProcessContext, error) {
	f, err := os.Open(file)
	if err != nil {
		return ProcessContext{}, fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxContextBytes+1))
	if err != nil {
		return ProcessContext{}, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxContextBytes {
		return ProcessContext{}, fmt.Errorf("%s: larger than %d bytes", file, maxContextBytes)
	}
	return ParseContext(file, data, trustDomain)
}
