// Command candord is candor's delivery server. It wires configuration,
// logging and signals to package internal/server, where the logic lives.
//
//	candord init   --data DIR --org NAME [--host NAMES]
//	candord serve  --data DIR [--listen ADDR] [--retention DAYS] [--anchor-interval DAYS]
//	candord invite --data DIR [--server HOST:PORT] [--expires 168h] USER
//	candord revoke --data DIR DEVICE
//	candord access request|approve|opened --data DIR ...
//	candord hold set|lift|list --data DIR ...
//
// Logs are JSON on standard error. The server stops gracefully on SIGINT
// and SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"candor"
	"candor/api"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

const usage = `usage:
  candord init   --data DIR --org NAME [--host localhost,127.0.0.1]
  candord serve  --data DIR [--listen :8443] [--retention DAYS] [--anchor-interval 30]
  candord invite --data DIR [--server HOST:PORT] [--expires 168h] USER
  candord revoke --data DIR DEVICE
  candord access request|approve|opened --data DIR ...
  candord hold   set|lift|list --data DIR ...

  init    make a new organisation in DIR: its CA, the server's TLS
          certificate for the --host names, the MLS external sender's key
          and certificate, and the database
  serve   serve the API over TLS 1.3 with device certificates; the
          organisation's archive must exist (candor-custody ceremony);
          hourly, it proposes the archive's replay anchors and deletes
          history older than --retention days that no legal hold covers
  invite  print a one-time invitation code for USER to enrol a device;
          it pins the archive
  revoke  revoke DEVICE and propose its removal from each of its groups
  access  log an opening request, a custodian's approval or a completed
          opening in the access transparency log ('candord access help')
  hold    set, lift or list legal holds ('candord hold help')
`

// defaultPort is the port serve listens on and invitations name by default.
const defaultPort = "8443"

// errUsage reports a command line that does not parse; main exits with 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "candord:", err)
		os.Exit(1)
	}
}

func openSQL(ctx context.Context, path string) (store.Store, error) {
	st, err := sqlstore.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// run runs one subcommand. ready, when not nil, is told the address serve
// listens on.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(net.Addr)) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fs := flag.NewFlagSet("candord "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	data := fs.String("data", "", "the organisation's data folder (required)")
	parse := func(nargs int) error {
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		if *data == "" || fs.NArg() != nargs {
			fs.Usage()
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "init":
		org := fs.String("org", "", "the organisation's name (required)")
		hosts := fs.String("host", strings.Join(server.DefaultHosts, ","), "comma-separated DNS names and IP addresses of the server")
		if err := parse(0); err != nil {
			return err
		}
		if *org == "" {
			fs.Usage()
			return errUsage
		}
		if err := server.Init(ctx, *data, server.InitOptions{Org: *org, Hosts: splitList(*hosts), OpenStore: openSQL}); err != nil {
			return err
		}
		logger.Info("organisation created", "data", *data, "org", *org)
		return nil
	case "serve":
		listen := fs.String("listen", ":"+defaultPort, "the address to listen on")
		retention := fs.Uint("retention", 0, "the organisation's retention period in days: history older than it is deleted, each deletion logged in the access log (0: keep everything)")
		anchor := fs.Uint("anchor-interval", uint(server.DefaultAnchorInterval/day), "days between the archive's replay anchors in a group in use")
		if err := parse(0); err != nil {
			return err
		}
		if *anchor == 0 || *anchor > maxDays || *retention > maxDays {
			fs.Usage()
			return errUsage
		}
		opts := serveOptions{listen: *listen, retention: time.Duration(*retention) * day, anchorInterval: time.Duration(*anchor) * day}
		return serve(ctx, logger, *data, opts, ready)
	case "invite":
		addr := fs.String("server", "", "host:port devices reach the server at (default: the first name of its certificate, port "+defaultPort+")")
		expires := fs.Duration("expires", api.InvitationLifetime, "how long the invitation stays valid")
		if err := parse(1); err != nil {
			return err
		}
		return withServer(ctx, logger, *data, nil, func(d *server.DataDir, srv *server.Server) error {
			if *addr == "" && len(d.Hosts) > 0 {
				*addr = net.JoinHostPort(d.Hosts[0], defaultPort)
			}
			code, err := srv.Invite(ctx, candor.UserID(fs.Arg(0)), *expires, *addr)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, api.EncodeInvitation(code))
			return err
		})
	case "revoke":
		if err := parse(1); err != nil {
			return err
		}
		return withServer(ctx, logger, *data, nil, func(_ *server.DataDir, srv *server.Server) error {
			return srv.Revoke(ctx, candor.DeviceID(fs.Arg(0)))
		})
	case "access":
		return runAccess(ctx, args[1:], stdout, stderr)
	case "hold":
		return runHold(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return errUsage
}

func splitList(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// withServer opens the data folder and runs f with a server over it.
func withServer(ctx context.Context, logger *slog.Logger, dir string, configure func(*server.Config), f func(*server.DataDir, *server.Server) error) (err error) {
	d, err := server.Open(ctx, dir, openSQL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	cfg := d.Config()
	cfg.Logger = logger
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	return f(d, srv)
}

// day is the unit of the retention period and the anchor interval.
const day = 24 * time.Hour

// maxDays bounds both: far beyond any records law, and well inside a
// time.Duration.
const maxDays = 100 * 366

// serveOptions are serve's flags.
type serveOptions struct {
	listen         string
	retention      time.Duration
	anchorInterval time.Duration
}

// serve runs the server until ctx ends, then shuts it down gracefully. It
// serves TLS only: every request but enrolment is bound to a device
// certificate, which plain HTTP cannot carry. Meanwhile it proposes the
// archive's replay anchors and applies the retention period, hourly.
func serve(ctx context.Context, logger *slog.Logger, dir string, opts serveOptions, ready func(net.Addr)) error {
	configure := func(c *server.Config) {
		c.Retention, c.AnchorInterval = opts.retention, opts.anchorInterval
	}
	return withServer(ctx, logger, dir, configure, func(d *server.DataDir, srv *server.Server) error {
		if d.Archive == nil {
			// Every group must contain the archive, so without one the
			// server could carry no conversation.
			return fmt.Errorf("%s has no archive yet: the custodians hold the ceremony first (candor-custody ceremony -data %s ...; see README.md): %w", dir, dir, server.ErrNoArchive)
		}
		ln, err := net.Listen("tcp", opts.listen)
		if err != nil {
			return err
		}
		hs := server.NewHTTPServer(srv.Handler(), srv.TLSConfig(d.TLSCert), slog.NewLogLogger(logger.Handler(), slog.LevelWarn))
		errc := make(chan error, 1)
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
		// Maintenance stops before the store closes.
		mctx, stopMaintenance := context.WithCancel(ctx)
		maintained := make(chan struct{})
		go func() {
			defer close(maintained)
			srv.Maintain(mctx, 0)
		}()
		defer func() {
			stopMaintenance()
			<-maintained
		}()
		logger.Info("listening", "addr", ln.Addr().String())
		if ready != nil {
			ready(ln.Addr())
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}
