"""Forms with fields (Flask-WTF); action buttons elsewhere carry only the CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(FlaskForm):
    name = StringField("Name (who or what uses it)", validators=[DataRequired(), Length(max=100)])


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL (your system's receiver)", validators=[DataRequired(), Length(max=2000)])
    events = StringField("Events (comma-separated; empty for all)", validators=[Length(max=1000)])


class ReplayForm(FlaskForm):
    hours = StringField("Replay the events of the last … hours", validators=[DataRequired(), Length(max=6)])
