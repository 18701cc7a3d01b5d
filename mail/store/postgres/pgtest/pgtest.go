// Package pgtest starts a real PostgreSQL server for a test: Debian's
// postgresql package's initdb and postgres, in a temporary data directory,
// as an unprivileged user (initdb refuses root), listening on a loopback
// port and on a Unix socket in that directory; it is stopped by its PID when
// the test ends.
//
// Where PostgreSQL is not installed, Start skips the test on a developer's
// machine and fails it under CI=true (CI installs it: scripts/tools.txt).
// Where it is installed but will not start, the test fails.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"appnet/internal/testnet"
)

// Server is a running PostgreSQL server.
type Server struct {
	// Host and Port are where it listens (127.0.0.1).
	Host string
	Port int
	// SocketDir holds its Unix socket.
	SocketDir string
	// User is the database superuser (no password: trust on loopback).
	User string

	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	dbs     atomic.Int64
}

// BinDir returns the directory holding initdb and postgres: $PG_BINDIR,
// Debian's newest /usr/lib/postgresql/NN/bin, or the directory of an
// initdb on PATH.
func BinDir() (string, error) {
	ok := func(dir string) bool {
		for _, p := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("PG_BINDIR"); d != "" && ok(d) {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", fmt.Errorf("pgtest: no initdb and postgres (Debian's postgresql package: /usr/lib/postgresql/NN/bin)")
}

func version(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

// Start starts a server for the test's length.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		testnet.Missing(t, "%v (make tools, as root, installs it; see scripts/tools.txt)", err)
	}
	var last error
	for range 3 { // a port taken between choosing it and binding it
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		last = err
	}
	t.Fatalf("pgtest: %v", last)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	dir, err := os.MkdirTemp(tempBase(), "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", SocketDir: filepath.Join(dir, "sock"), User: "postgres", dir: dir,
		logPath: filepath.Join(dir, "postgres.log"), exited: make(chan struct{})}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	for _, d := range []string{data, s.SocketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
	}
	cred, err := credential(dir)
	if err != nil {
		return fail(err)
	}
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Dir = dir
		c.Env = []string{"LC_ALL=C", "PATH=" + bin + ":/usr/bin:/bin", "TZ=UTC"}
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return c
	}
	// initdb: trust authentication (a throwaway server on loopback), no
	// fsync of the new cluster (it lives for one test).
	out, err := run("initdb", "-D", data, "-U", s.User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, tail(out)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logf, err := os.Create(s.logPath)
	if err != nil {
		return fail(err)
	}
	// fsync=off: the data dies with the test; crash safety of PostgreSQL
	// itself is not what these tests test.
	s.cmd = run("postgres", "-D", data, "-p", strconv.Itoa(s.Port), "-k", s.SocketDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fail(fmt.Errorf("postgres: %w", err))
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	// Ready when it answers a query (at most 60 s).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
			if err == nil {
				break
			}
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.logPath)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %s", tail(log))
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("postgres did not answer in 60 s: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(s.stop)
	return s, nil
}

// tempBase is where the server's directory goes: the usual temporary
// directory, unless we are root and an unprivileged user could not reach
// it (a TMPDIR under /root), then /tmp.
func tempBase() string {
	base := os.TempDir()
	if os.Geteuid() != 0 {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == "/" || d == "." {
			return base
		}
	}
}

// credential returns who runs initdb and postgres: the caller, unless it
// is root, which they refuse; then the postgres user Debian's package
// creates, or nobody. The directory becomes theirs.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres or nobody user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// stop stops the server by its PID: SIGINT (PostgreSQL's fast shutdown),
// then SIGKILL to its process group after 30 s, and removes its directory.
func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

// DSN returns the URL of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.User, s.Host, s.Port, db)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.ReplaceAll(string(b), "\n", " | ")
}
