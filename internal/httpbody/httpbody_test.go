package httpbody

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type robot struct {
	Name   string    `json:"name"`
	Grants []string  `json:"grants"`
	At     time.Time `json:"at,omitzero"`
}

func decode(body string, limit int64) (robot, *Error) {
	var v robot
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	err := DecodeJSON(httptest.NewRecorder(), r, limit, &v)
	return v, err
}

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, body string
		status     int    // 0: accepted
		msg        string // part of the message
	}{
		{"object", `{"name":"a","grants":["x"]}`, 0, ""},
		{"whitespace around", " \n{\"name\":\"a\"}\n\t ", 0, ""},
		{"exactly the limit", `{"name":"` + strings.Repeat("a", 64-11) + `"}`, 0, ""},
		{"one byte over the limit", `{"name":"` + strings.Repeat("a", 64-10) + `"}`, 413, "larger than 64 bytes"},
		{"whitespace past the limit", `{"name":"a"}` + strings.Repeat(" ", 64), 413, "larger than 64 bytes"},
		{"empty", ``, 400, "empty"},
		{"trailing object", `{"name":"a"}{"name":"b"}`, 400, "after top-level value"},
		{"trailing garbage", `{"name":"a"} x`, 400, "invalid character"},
		{"duplicate name", `{"name":"a","name":"b"}`, 400, `duplicate object member name "name"`},
		{"duplicate nested", `{"name":"a","grants":["x"],"grants":[]}`, 400, "duplicate"},
		{"unknown name", `{"name":"a","admin":true}`, 400, `unknown object member name "admin"`},
		{"other case", `{"Name":"a"}`, 400, `unknown object member name "Name"`},
		{"truncated", `{"name":"a"`, 400, "unexpected EOF"},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", 400, "invalid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, e := decode(tc.body, 64)
			if tc.status == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				if v.Name == "" {
					t.Fatalf("decoded %+v: name missing", v)
				}
				return
			}
			if e == nil {
				t.Fatal("accepted, want a refusal")
			}
			if e.Status != tc.status || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", e.Status, e.Message, tc.status, tc.msg)
			}
			wantCode := map[int]string{400: CodeBadRequest, 413: CodeTooLarge}[tc.status]
			if e.Code != wantCode {
				t.Fatalf("code %q, want %q", e.Code, wantCode)
			}
		})
	}
}
