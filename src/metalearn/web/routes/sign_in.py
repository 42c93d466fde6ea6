"""Sign in with the API token (traded for a session cookie), and sign out."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from metalearn.web.forms import read_form, write_form
from metalearn.web.pages import SECURITY_HEADERS, Viewer, local_path, render, sessions_of
from metalearn.web.sessions import COOKIE

router = APIRouter()


@router.get("/signin")
def sign_in_page(request: Request, next: str = "/") -> Response:  # noqa: A002 (the query's name)
    # Open to everyone, also where reading pages needs a session (ViewerDep would send a visitor
    # who has not signed in back here, round and round).
    sessions = sessions_of(request)
    viewer = Viewer(sessions.get(request.cookies.get(COOKIE)), sessions.enabled)
    return render("signin.html", viewer, next=local_path(next), error=None)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    sessions = sessions_of(request)
    target = local_path(form.get("next"))
    try:
        session = sessions.sign_in(form.get("token"))
    except HTTPException as exc:
        return render("signin.html", Viewer(None, sessions.enabled), status_code=exc.status_code,
                      next=target, error=str(exc.detail))
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    # HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it; Secure only
    # where the page came over HTTPS (a loopback server speaks plain HTTP).
    response.set_cookie(COOKIE, session.id, max_age=int(sessions.lifetime_s), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    session, _form = await write_form(request)
    sessions_of(request).sign_out(session.id)
    response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
