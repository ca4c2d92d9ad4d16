package s3api

import (
	"io"
	"net/http"
)

// flipTransport alters one byte of every request body past its first
// chunk header, as a corrupting network path would.
type flipTransport struct{}

func (flipTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Method == http.MethodPut {
		r.Body = &flipReader{rc: r.Body}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type flipReader struct {
	rc   io.ReadCloser
	seen int
	done bool
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	for i := 0; i < n && !f.done; i++ {
		f.seen++
		if f.seen == 1000 { // inside the first chunk's data
			p[i] ^= 0xff
			f.done = true
		}
	}
	return n, err
}

func (f *flipReader) Close() error { return f.rc.Close() }
