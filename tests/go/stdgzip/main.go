// stdgzip compresses standard input to standard output with Go's own
// compress/gzip or compress/flate, as the Go toolchain that builds it has
// them. ferry's tests build it with each Go they check against.
//
//	stdgzip -level N [-raw] [-write N]
//
// -raw writes a bare deflate stream (no gzip header or trailer); -write N
// hands the input to the encoder in writes of at most N bytes.
package main

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"flag"
	"io"
	"os"
)

func main() {
	level := flag.Int("level", 6, "compression level (-2, -1, 0..9)")
	raw := flag.Bool("raw", false, "bare deflate, no gzip framing")
	write := flag.Int("write", 32<<10, "largest single write")
	flag.Parse()
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var w io.WriteCloser
	var err error
	if *raw {
		w, err = flate.NewWriter(out, *level)
	} else {
		w, err = gzip.NewWriterLevel(out, *level)
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
		os.Stderr.WriteString("stdgzip: " + err.Error() + "\n")
		os.Exit(1)
	}
}
