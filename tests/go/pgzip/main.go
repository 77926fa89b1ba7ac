// pgzip compresses standard input to standard output with
// klauspost/pgzip over klauspost/compress/flate, at the versions the
// GOPATH it is built in holds (Debian's golang-github-klauspost-*-dev).
//
//	pgzip -level N [-raw] [-write N]
//
// -raw compresses with klauspost/compress/flate alone (a bare deflate
// stream); -write N hands the input over in writes of at most N bytes.
package main

import (
	"bufio"
	"flag"
	"io"
	"os"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/pgzip"
)

func main() {
	level := flag.Int("level", 5, "compression level (-2, -1, 0..9)")
	raw := flag.Bool("raw", false, "bare klauspost deflate, no pgzip")
	write := flag.Int("write", 32<<10, "largest single write")
	flag.Parse()
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var w io.WriteCloser
	var err error
	if *raw {
		w, err = flate.NewWriter(out, *level)
	} else {
		w, err = pgzip.NewWriterLevel(out, *level)
	}
	check(err)
	buf := make([]byte, *write)
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			_, werr := w.Write(buf[:n])
			check(werr)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		check(err)
	}
	check(w.Close())
	check(out.Flush())
}

func check(err error) {
	if err != nil {
		os.Stderr.WriteString("pgzip: " + err.Error() + "\n")
		os.Exit(1)
	}
}
