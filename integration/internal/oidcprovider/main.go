// Command oidcprovider is the OpenID provider the browser tests sign in
// through: zitadel/oidc's example provider (its op package, in-memory
// storage and login page) with two people whose ID tokens carry a
// "groups" claim, which the example's own users lack. It listens on
// 127.0.0.1 only.
//
//	oidcprovider -addr 127.0.0.1:PORT [-issuer-host localhost] -redirect URL -post-logout URL
//
// registers one confidential web client, "slipway" with secret
// "slipway-secret", that may come back to -redirect (the code flow's
// callback) and -post-logout (after RP-initiated logout). The people:
//
//	alice / alice-password  groups [slipway-admins]
//	bob   / bob-password    groups [qa-team]
//
// It prints "listening on <issuer>" once it serves.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"golang.org/x/text/language"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client id and secret of the one client.
const (
	clientID     = "slipway"
	clientSecret = "slipway-secret"
)

type person struct {
	user   storage.User
	groups []string
}

var people = []person{
	{storage.User{ID: "u-alice", Username: "alice", Password: "alice-password", FirstName: "Alice", LastName: "Admin",
		Email: "alice@example.test", EmailVerified: true, PreferredLanguage: language.English}, []string{"slipway-admins"}},
	{storage.User{ID: "u-bob", Username: "bob", Password: "bob-password", FirstName: "Bob", LastName: "Tester",
		Email: "bob@example.test", EmailVerified: true, PreferredLanguage: language.English}, []string{"qa-team"}},
}

// users is the example storage's UserStore over people.
type users struct{}

func (users) GetUserByID(id string) *storage.User {
	for i := range people {
		if people[i].user.ID == id {
			u := people[i].user
			return &u
		}
	}
	return nil
}

func (users) GetUserByUsername(name string) *storage.User {
	for i := range people {
		if people[i].user.Username == name {
			u := people[i].user
			return &u
		}
	}
	return nil
}

func (users) ExampleClientID() string { return "service" }

// store is the example storage plus groups in the ID token and the
// client's post-logout redirect (the example's clients register none).
type store struct {
	*storage.Storage
	postLogout []string
}

// SetUserinfoFromRequest fills the ID token's claims: the example's
// (profile and email always, as Dex and Keycloak do), and groups.
func (s store) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, append(scopes, oidc.ScopeProfile, oidc.ScopeEmail)); err != nil {
		return err
	}
	for _, p := range people {
		if p.user.ID == req.GetSubject() {
			info.AppendClaims("groups", p.groups)
		}
	}
	return nil
}

type client struct {
	op.Client
	postLogout []string
}

func (c client) PostLogoutRedirectURIs() []string { return c.postLogout }

func (s store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return client{c, s.postLogout}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (a loopback address)")
	redirect := flag.String("redirect", "", "the client's redirect URI")
	postLogout := flag.String("post-logout", "", "the client's post-logout redirect URI")
	issuerHost := flag.String("issuer-host", "", `the issuer's host name ("": the listen address); "localhost" puts the provider on another site than 127.0.0.1`)
	flag.Parse()
	if err := run(*addr, *issuerHost, *redirect, *postLogout); err != nil {
		fmt.Fprintln(os.Stderr, "oidcprovider:", err)
		os.Exit(1)
	}
}

func run(addr, issuerHost, redirect, postLogout string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-addr must be a loopback host:port, got %q", addr)
	}
	if redirect == "" {
		return fmt.Errorf("-redirect is required")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	issuer := "http://" + ln.Addr().String() + "/"
	if issuerHost != "" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		issuer = "http://" + net.JoinHostPort(issuerHost, port) + "/"
	}
	clients := map[string]*storage.Client{clientID: storage.WebClient(clientID, clientSecret, redirect)}
	s := store{Storage: storage.NewStorageWithClients(users{}, clients)}
	if postLogout != "" {
		s.postLogout = strings.Split(postLogout, ",")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	router := exampleop.SetupServer(issuer, s, logger, false)
	fmt.Println("listening on", issuer)
	return (&http.Server{Handler: router}).Serve(ln)
}
