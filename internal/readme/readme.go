// Package readme reads the shell blocks of the repository's README.md, so
// that tests can run the commands as written and the README stays true.
package readme

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// comment is a shell comment at the end of a line.
var comment = regexp.MustCompile(`\s+#.*$`)

// Block returns the command lines of the first sh block after the line
// heading in the Markdown file path, trimmed and without comments; blank
// lines are left out.
func Block(path, heading string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	state := 0 // 0: before heading, 1: before block, 2: in block
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case state == 0 && line == heading:
			state = 1
		case state == 1 && line == "```sh":
			state = 2
		case state == 2 && line == "```":
			return lines, nil
		case state == 2 && strings.TrimSpace(line) != "":
			lines = append(lines, strings.TrimSpace(comment.ReplaceAllString(line, "")))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("readme: %s has no sh block under %q", path, heading)
}

// Words splits a command line as sh would for the README's lines: words
// separated by blanks, kept together inside single or double quotes, which
// are removed. It knows no escapes or expansions, which the README does not
// use.
func Words(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	var quote rune // the open quote, or 0
	inWord := false
	for _, r := range line {
		switch {
		case quote == 0 && (r == '\'' || r == '"'):
			quote, inWord = r, true
		case r == quote:
			quote = 0
		case quote == 0 && (r == ' ' || r == '\t'):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("readme: %s: unbalanced quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
