// Command candor is candor's command line. Today it has one command, demo,
// which demonstrates the MLS layer; enrolment, conversations and chat come
// with the server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"candor/internal/demo"
)

const usage = `usage: candor demo [-corpus FILE]

  demo   narrate a conversation between devices of an organisation:
         certificates, an MLS group, messages in several languages, key
         rotation and the removal of a lost device. Nothing is kept.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] != "demo" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	corpus := fs.String("corpus", filepath.Join("..", "shared", "corpus", "udhr-snippets.tsv"), "multilingual sentences (tab-separated: lang, script, snippet)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "candor-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "candor:", err)
		os.Exit(1)
	}
	err = demo.Run(ctx, demo.Config{Out: os.Stdout, Dir: dir, Corpus: *corpus})
	if rmErr := os.RemoveAll(dir); err == nil && rmErr != nil {
		err = rmErr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "candor demo:", err)
		os.Exit(1)
	}
}
